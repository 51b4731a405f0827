"""N cached tasks, one after another on one worker: each returns its square and the token of
the run that executed it (not part of its identity: `ignore_for_cache`). Prints how many ran
in this run. Arguments: N TOKEN SECONDS [FAIL_AT] (FAIL_AT: the workflow raises once that many
tasks are done)."""

import sys

from parsl import python_app


@python_app(cache=True, ignore_for_cache=["token"])
def step(x: int, token: str, seconds: float) -> tuple[int, str]:
    import time

    time.sleep(seconds)
    return x * x, token


n, token, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
fail_at = int(sys.argv[4]) if len(sys.argv) > 4 else None
futures = [step(i, token=token, seconds=seconds) for i in range(n)]
results = []
for future in futures:
    results.append(future.result())
    print(f"done {len(results)}", flush=True)
    if len(results) == fail_at:
        raise RuntimeError(f"the workflow fails after {fail_at} tasks")
print(f"sum {sum(r for r, _ in results)} ran {sum(t == token for _, t in results)}")
