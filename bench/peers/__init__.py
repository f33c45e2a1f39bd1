"""The same publishing job written for the systems our users would otherwise assemble.

Each module here is one system, written the way its own documentation says to, with its
safest documented no-loss settings; :mod:`bench.peers.common` is the job they all do and how
the runner (``bench/peers/run.py``) drives them. Their dependencies are the optional ``peers``
group (``pip install -e '.[peers]'``), never Herald's.
"""
