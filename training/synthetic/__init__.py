"""``sgnet-synth``: a synthetic video instance segmentation set in the YouTube-VIS format.

Every video has a textured background (smooth noise, a gradient or stripes, in muted colours that differ per
video) and one to a few shapes moving on straight lines at varied speeds (some fast), turning, growing or
shrinking a little, crossing and occluding one another, entering and leaving the frame. Each shape class has
its own colour family and texture, so the classes are learnable:

=========  ==================  =============================================
class      colour family       texture
=========  ==================  =============================================
circle     red                 radial shading, bright centre
square     blue                checkerboard
triangle   green               stripes
star       yellow-orange       dots
ring       magenta             concentric bands
=========  ==================  =============================================

Masks are exact: a pixel belongs to a shape when the pixel's centre lies inside the shape's geometry, and to the
front-most shape covering it (a fixed depth order per video), so an occluded part is in no mask but the
occluder's; a shape that is off-frame or fully hidden is null in that frame. The image pixels of a shape are
painted from the same mask. A shape's ``size`` is the diameter of its circumscribed circle, in pixels.

Written: ``OUT/JPEGImages/<video>/<frame number>.jpg`` (00000, 00005, ...: YouTube-VIS's naming, frame t
being frame 5t of 30 fps footage, 6 frames a second) and ``OUT/annotations.json`` (compressed RLE per frame, as
YouTube-VIS ships). Everything follows from ``--seed``; video ``i`` depends only on the seed and ``i``, so a
set of 10 videos is the first 10 videos of a set of 48 with the same seed and other options.

With ``--depth`` the set also has depth from a pinhole camera (``OUT/camera_info.yaml``): every shape is a flat
cut-out at its own distance in front of a tilted background plane; ``OUT/Depth/<video>/<frame>.png`` holds each
frame's depth (16-bit, millimetres) and ``OUT/depth_ground_truth.json`` every object's exact 3D position per frame
(see :func:`training.synthetic.depth.depth_video`). The colour frames and annotations are the same with or
without depth.

video.py draws and renders one video, depth.py adds its depth, generate.py writes the set and is the command line.
``python -m training.synthetic`` and the ``sgnet-synth`` console script run ``main``.
"""
from training.synthetic.depth import CAMERA_INFO_FILE, DEPTH_DIR, DEPTH_TRUTH_FILE, PinholeCamera, depth_video
from training.synthetic.generate import (DEFAULT_CLASSES, DEFAULT_FRAMES, DEFAULT_HEIGHT, DEFAULT_OBJECTS,
                                         DEFAULT_VIDEOS, DEFAULT_WIDTH, generate_synthetic_set, main)
from training.synthetic.video import (DEFAULT_SIZES, DOMAINS, MIN_VISIBLE_FRAMES, SHAPES, Domain, ShapeTrack,
                                      SyntheticError, random_video, render_frame)

__all__ = ["CAMERA_INFO_FILE", "DEFAULT_CLASSES", "DEFAULT_FRAMES", "DEFAULT_HEIGHT", "DEFAULT_OBJECTS",
           "DEFAULT_SIZES", "DEFAULT_VIDEOS", "DEFAULT_WIDTH", "DEPTH_DIR", "DEPTH_TRUTH_FILE", "DOMAINS", "Domain",
           "MIN_VISIBLE_FRAMES",
           "SHAPES", "PinholeCamera", "ShapeTrack", "SyntheticError", "depth_video", "generate_synthetic_set", "main",
           "random_video", "render_frame"]
