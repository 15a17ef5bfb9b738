"""``python -m training.synthetic``: the sgnet-synth command line."""
import sys

from training.synthetic.generate import main

sys.exit(main())
