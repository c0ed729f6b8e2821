"""The SFU's compiled fan-out loop (``_fanout``, built from ``fanout.c`` by ``pip install``).

Optional: when it is not built, :mod:`audio_rooms.sfu.egress` forwards in pure Python.
"""
