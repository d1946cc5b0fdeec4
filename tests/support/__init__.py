"""What the tests share, and the only place they share it from (no test module imports another).

- wait:         wait_for / wait_for_async: poll a condition until a deadline (the one wait helper)
- ports:        free_port
- system:       System, running_system: the whole `python run.py --sim` under supervisord
- stack:        Stack: chosen actors as separate processes (sim, bus, feeds...), trade_accounting
- rings:        open_reader (a reader from an ipc.names declaration), RingFollower, ring_counters
- bus:          BusTap: a subscriber thread keeping every message's seq/boot verdict
- sim, poly_sim: the simulator in-process on OS-chosen ports, WebSocket clients and readers
- kline_server: a Binance klines REST server with injectable faults and a test-set clock
- context:      the context actor in-process (Actor) and a stand-in bus XSUB (Sub)
- api:          the API app over real shm, a fake compute REP socket, request helpers
- trades:       trade data builders and the plain-loop volatility reference
- frames:       Binance markPrice/forceOrder frames, combined-stream captures, captured sides, a real poly book
- compute_rig:  Rig: compute in-process over rings and blocks it reads; market and book_rec builders
- promql:       /metrics with every family rendered, sample types, PromQL metric names and rate checks
- recordings:   build_recording: a recording of real captures as the recorder writes one
- fixtures:     paths to the real captures in ../shared/fixtures and `need` (fails under CI)
"""
