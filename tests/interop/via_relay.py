"""Runs another scenario script through a relay: every rpc.connect(host, RELAY_PORT) made by
the script becomes a multi-hop session, ["rpc.Connect", "127.0.0.1", NEXT_PORT, ""].

usage: python via_relay.py NEXT_PORT SCRIPT RELAY_PORT SCENARIO
"""
import os
import runpy
import sys

from tvm import rpc

next_port = int(sys.argv[1])
script = sys.argv[2]
direct_connect = rpc.connect


def connect_through_relay(host, port, key="", session_timeout=0, session_constructor_args=None, **kw):
    args = ["rpc.Connect", "127.0.0.1", next_port, "", False]
    return direct_connect(host, port, key, session_timeout, session_constructor_args=args, **kw)


rpc.connect = connect_through_relay
sys.argv = [script] + sys.argv[3:]
runpy.run_path(os.path.join(os.path.dirname(__file__), script), run_name="__main__")
