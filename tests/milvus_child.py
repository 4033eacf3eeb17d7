"""Runs the embedded Milvus standalone server until SIGTERM or until the test process
that started it is gone (started by milvus_server.py inside a network namespace that
has only a loopback interface)."""

import os
import signal
import sys
import threading

from milvus import MilvusServer

server = MilvusServer()
server.set_base_dir(sys.argv[1])
parent = os.getppid()
stop = threading.Event()
signal.signal(signal.SIGTERM, lambda *_: stop.set())
server.start()  # returns once the server answers its health check
print(f"ready {server.listen_port}", flush=True)
try:
    # A test run killed outright (a timeout, kill -9) leaves no server behind.
    while not stop.is_set() and server.server_proc.poll() is None and os.getppid() == parent:
        stop.wait(1)
finally:
    server.stop()
