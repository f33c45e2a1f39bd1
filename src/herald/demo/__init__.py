"""The demo and its tooling: workloads, the simulator as a process, and the run judge.

- :mod:`.runner`: ``herald demo``: a workload published to the simulator, with a live view;
- :mod:`.workload`: the channels and posts of a run (time zones, media, platform mix);
- :mod:`.simulator_process`: the platform simulator in a process of its own;
- :mod:`.judge`: counts lost, duplicated and misrecorded posts from both ends of a run.
"""
