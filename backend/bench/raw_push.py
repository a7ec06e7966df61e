"""Raw pyzmq PUSH sender: the baseline the protocol's throughput is compared with."""

from __future__ import annotations

import sys

import numpy as np
import zmq


def main() -> None:
    address, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    frame = np.zeros((size, size, 4), np.float16)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.SNDHWM, 16)
    sock.connect(address)
    for _ in range(n):
        sock.send(frame, copy=False)
    sock.close(linger=-1)
    ctx.term()


if __name__ == "__main__":
    main()
