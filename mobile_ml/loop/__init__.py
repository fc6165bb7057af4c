"""The closed loop's one command: ``mobile-ml cycle`` (monitor → retrain → export → benchmark → publish)."""

from mobile_ml.loop.config import CycleConfig, load_cycle_config
from mobile_ml.loop.cycle import CycleResult, run_cycle

__all__ = ["CycleConfig", "CycleResult", "load_cycle_config", "run_cycle"]
