"""Files on a cluster label: N tasks with and without a 1 KB input each, then one 50 MB input
shared by 100 tasks. Usage (under pwrun run): data.py TASKS DIRECTORY"""

import os
import sys
import time
from pathlib import Path

import parsl
from parsl import File, python_app

import pwrun


@python_app(executors=["site"])
def size(inputs=()):
    return sum(os.path.getsize(f.filepath) for f in inputs)


def timed(tasks: list) -> float:
    start = time.perf_counter()
    futures = [task() for task in tasks]
    for future in futures:
        future.result()
    return time.perf_counter() - start


if __name__ == "__main__":
    count, directory = int(sys.argv[1]), Path(sys.argv[2])
    dfk = parsl.load(pwrun.config())
    files = dfk.executors["site"].files
    size().result()  # workers up
    small = []
    for i in range(count):
        (directory / f"in{i}").write_bytes(os.urandom(1024))
        small.append(File(str(directory / f"in{i}")))
    plain = timed([size] * count)
    with_files = timed([lambda f=f: size(inputs=[f]) for f in small])
    print(f"plain {plain:.3f} s, with files {with_files:.3f} s")
    shared = directory / "shared.bin"
    shared.write_bytes(os.urandom(50 << 20))
    before = files.bytes_sent
    sizes = {size(inputs=[File(str(shared))]) for _ in range(100)}
    assert {s.result() for s in sizes} == {50 << 20}
    print(f"shared sent {files.bytes_sent - before} bytes")
