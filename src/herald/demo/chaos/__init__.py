"""``herald chaos``: the engine under the faults an operator meets, judged from both ends.

- :mod:`.scenario`: what a run is made of: tight quotas on both sides, platform faults, the
  engines' tuning, the channels and the posts;
- :mod:`.fleet`: the ``herald run`` processes, killed and started again;
- :mod:`.disruptions`: the faults, on a schedule: engine kills, database connections cut, a
  platform down;
- :mod:`.verdict`: the judgement, from the simulator's audit and the store;
- :mod:`.run`: one run, start to end.
"""

from herald.demo.chaos.run import run_chaos
from herald.demo.chaos.scenario import ChaosOptions
from herald.demo.chaos.verdict import Verdict

__all__ = ["ChaosOptions", "Verdict", "run_chaos"]
