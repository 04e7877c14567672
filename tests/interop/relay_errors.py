"""A relay whose next hop is unreachable: the client's connect fails with the relay's reason.

usage: python relay_errors.py RELAY_PORT DEAD_PORT
"""
import sys

from tvm import rpc

relay_port, dead_port = int(sys.argv[1]), int(sys.argv[2])
try:
    rpc.connect("127.0.0.1", relay_port,
                session_constructor_args=["rpc.Connect", "127.0.0.1", dead_port, "", False])
    print("connected")
except Exception as e:
    print(type(e).__name__, str(e).splitlines()[-1])
