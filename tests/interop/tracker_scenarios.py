"""TVM 0.27's own client against tensor-rpc servers through TVM's tracker, and against a
full server.

usage:
  python tracker_scenarios.py requests TRACKER_PORT KEY N
      N sessions in a row from rpc.connect_tracker(..).request(KEY), each closed before the
      next; each calls testing.echo. Prints "ok N".
  python tracker_scenarios.py busy SERVER_PORT
      Holds one session to a server started with --max-sessions 1 and tries a second:
      prints the error TVM's client raises, then connects again once the first is closed.
"""
import gc
import sys

from tvm import rpc

which = sys.argv[1]

if which == "requests":
    port, key, n = int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    tracker = rpc.connect_tracker("127.0.0.1", port)
    for i in range(n):
        remote = tracker.request(key, priority=1, session_timeout=0)
        echo = remote.get_function("testing.echo")
        assert echo(i) == i, i
        del echo, remote
        gc.collect()
    print("ok", n)

elif which == "busy":
    port = int(sys.argv[2])
    first = rpc.connect("127.0.0.1", port)
    try:
        rpc.connect("127.0.0.1", port)
        print("second session: accepted")
    except Exception as e:  # TVM raises tvm.error.* (a RuntimeError) with our message
        print("second session:", type(e).__name__, str(e).strip().splitlines()[-1])
    del first
    gc.collect()
    import time
    for _ in range(50):
        try:
            again = rpc.connect("127.0.0.1", port)
            print("after close:", again.get_function("testing.echo")("back"))
            break
        except Exception:
            time.sleep(0.1)
else:
    sys.exit(f"unknown scenario {which}")
