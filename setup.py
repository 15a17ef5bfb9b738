"""Plain pip install of the Python packages and console scripts (`pip install .`).

On a ROS 2 machine, `colcon build` uses CMakeLists.txt instead (messages plus these same packages).
"""
from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="sgnet_ros",
    version="0.1.0",
    description="SG-Net video instance segmentation for ROS 2: model, training, evaluation and the node",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["sgnet_model", "sgnet_model.*", "training", "training.*",
                                    "sgnet_ros", "sgnet_ros.*"]),
    data_files=[
        ("share/sgnet_ros/config", [str(p) for p in [*Path("config").glob("*.yaml"), *Path("config").glob("*.xml"),
                                                     *Path("config").glob("*.rviz")]]),
        ("share/sgnet_ros/config/model", [str(p) for p in Path("config/model").glob("*.yaml")]),
        ("share/sgnet_ros/config/train", [str(p) for p in Path("config/train").glob("*.yaml")]),
        ("share/sgnet_ros/launch", [str(p) for p in Path("launch").glob("*.py")]),
    ],
    # and trackeval (HOTA in the reports), without its dependencies: requirements-nodeps.txt says why
    install_requires=["torch>=2.1", "torchvision>=0.16", "numpy>=1.24", "pyyaml>=6", "pycocotools>=2.0.8",
                      "opencv-python-headless>=4.8", "rosbags>=0.10", "tqdm>=4.66", "tensorboard>=2.14",
                      "scipy>=1.10", "tabulate>=0.9"],
    # The other runtimes (docs/export.md): pip install '.[runtimes]' in the checkout. onnx reads and writes the frame graphs
    # (every backend but torch needs it), onnxruntime and openvino run them; without them the node runs on torch.
    # nncf quantizes a graph to int8 (sgnet-export --int8), on the machine that exports; the robot does not need it.
    extras_require={"runtimes": ["onnx>=1.16", "onnxruntime>=1.18", "openvino>=2024.4"], "int8": ["nncf>=3.4"]},
    entry_points={
        "console_scripts": [
            "sgnet-bench = training.benchmarks.bench:main",
            "sgnet-train-bench = training.benchmarks.train_bench:main",
            "sgnet-peer-bench = training.benchmarks.peer_bench:main",
            "sgnet-train = training.train:main",
            "sgnet-eval = training.evaluate:main",
            "sgnet-export = training.export:main",
            "sgnet-synth = training.synthetic:main",
            "sgnet-split = training.split:main",
            "sgnet-weights = training.weights:main",
            "sgnet-node = sgnet_ros.node_program:main",
            "sgnet-node-bench = sgnet_ros.tools.node_bench:main",
            "sgnet-replay = sgnet_ros.tools.replay:main",
            "sgnet-bag = sgnet_ros.tools.bag:main",
            "sgnet-label = sgnet_ros.tools.label:main",
            "sgnet-demo = sgnet_ros.tools.demo:main",
        ],
    },
)
