"""Data across sites, as ordinary Parsl apps write it: Files and bash_app streams.

`data.py pipeline SOURCE OUT`: SOURCE -> transform on site A -> analysis on site B -> summary here.
`data.py streams`: bash_apps with AUTO_LOGNAME on a compute node, one of them failing.
`data.py failures OUT`: each way a file can fail to move; one line per case.
`data.py objects S3_URL GS_URL`: S3_URL -> transform on site A -> GS_URL.
"""

import sys
from pathlib import Path

import parsl
from parsl import File, bash_app, python_app

import pwrun


@bash_app(executors=["a"])
def transform(inputs=(), outputs=(), stdout=None, stderr=None):
    return f"hostname >&2; echo {inputs[0]} >&2; tr a-z A-Z < {inputs[0]} > {outputs[0]}"


@python_app(executors=["b"])
def analyse(inputs=(), outputs=()):
    import socket

    with open(inputs[0]) as source:
        text = source.read()
    with open(outputs[0], "w") as out:
        out.write(f"{len(text.split())} words: {text}")
    return f"{socket.gethostname()} {inputs[0].filepath}"


@bash_app(executors=["a"])
def say(words, fail=False, stdout=None, stderr=None):
    return f"hostname; echo {words}; echo {words} on stderr >&2" + ("; exit 7" if fail else "")


@python_app(executors=["a"])
def forgets(outputs=()):
    """Never writes its output."""


@python_app(executors=["a"])
def writes(outputs=()):
    with open(outputs[0], "w") as out:
        out.write("made on the site")


@python_app(executors=["tiny"])
def reads(inputs=()):
    return len(open(inputs[0], "rb").read())


def pipeline(source: Path, out: Path) -> None:
    upper = transform(
        inputs=[File(str(source))],
        outputs=[File(str(out / "upper.txt"))],
        stderr=parsl.AUTO_LOGNAME,
    )
    analysis = analyse(inputs=[upper.outputs[0]], outputs=[File(str(out / "analysis.txt"))])
    print("transform", upper.result(), "stderr", upper.stderr)
    print("analysis", analysis.result())
    summary = out / "summary.txt"
    summary.write_text(f"summary of {(out / 'analysis.txt').read_text()}")
    print("summary", summary)


def streams() -> None:
    ok = say("hello", stdout=parsl.AUTO_LOGNAME, stderr=parsl.AUTO_LOGNAME)
    failed = say("broken", fail=True, stdout=parsl.AUTO_LOGNAME, stderr=parsl.AUTO_LOGNAME)
    print("ok", ok.result(), ok.stdout)
    try:
        failed.result()
    except Exception as exc:
        print("failed", type(exc).__name__, failed.stderr)


def objects(source: str, destination: str) -> None:
    upper = transform(inputs=[File(source)], outputs=[File(destination)])
    print("objects", upper.outputs[0].result().url, upper.result())


def failures(out: Path) -> None:
    big = out / "big.bin"
    big.write_bytes(b"x" * 3_000_000)
    (out / "blocker").write_text("a file where a directory is wanted")
    cases = {
        "missing": lambda: writes(
            inputs=[File(str(out / "absent.txt"))], outputs=[File(str(out / "m.txt"))]
        ),
        "not-created": lambda: forgets(outputs=[File(str(out / "never.txt"))]),
        "disk-full": lambda: reads(inputs=[File(str(big))]),
        "unwritable": lambda: writes(outputs=[File(str(out / "blocker" / "w.txt"))]),
    }
    for name, app in cases.items():
        try:
            print(name, "succeeded?!", app().result())
        except Exception as exc:
            print(name, type(exc).__name__, exc)


if __name__ == "__main__":
    parsl.load(pwrun.config())
    mode, *paths = sys.argv[1:]
    if mode == "objects":
        objects(*paths)
    else:
        {"pipeline": pipeline, "streams": streams, "failures": failures}[mode](*map(Path, paths))
