"""mobile_ml: carry a model from a dataset to phones.

The pipeline, one package per stage: ``data`` (load, profile, clean, encode, split) → ``train`` (candidates,
selection, evaluation) → export → benchmark → publish → delivery. The CLI (``mobile_ml.cli``) is a thin layer over
these; nothing here imports it.
"""

from mobile_ml import _tf

__version__ = "0.1.0"

# Must happen before anything imports TensorFlow; see _tf.py.
_tf.configure_environment()
