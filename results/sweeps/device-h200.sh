#!/usr/bin/env bash
# The command run on the lent NVIDIA H200 machine (Python 3.12, numpy 2.5.2, scipy 1.18.1,
# torch 2.11.0+cu130, no registry) on 2026-12-04, in the repository root, with the ignored
# folders .whl (wheels for Python 3.12: recbole 1.2.1, pandas 2.3.3, pytz, tzdata, colorlog,
# thop, texttable, each at constraints.txt's version) and .devgit (`git clone --depth 1 --bare`
# of this checkout, so that the run records name the commit) carried beside the working tree.
# RecBole 1.2.1's Config sets np.float = np.float_ and the like, and numpy 2 has no float_,
# complex_ or unicode_: a sitecustomize gives numpy 2 those three names (aliases of float64,
# complex128 and str_) before anything runs; no value changes. numpy 1.26.4 cannot be carried
# instead: that machine's scipy needs numpy 2. Arguments: the jobs file and the deadline in
# seconds (the first sweep: the defaults below).
# usage: results/sweeps/device-h200.sh [JOBS] [DEADLINE] [GRACE]
set -o pipefail; R=$PWD; JOBS=${1:-results/sweeps/2026-12-04-h200.jobs} DEADLINE=${2:-450} GRACE=${3:-40}; rm -rf /tmp/site /tmp/sw; python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site || exit 1; printf 'import numpy as np\nfor a, b in (("float_", "float64"), ("complex_", "complex128"), ("unicode_", "str_")):\n    if a not in np.__dict__:\n        setattr(np, a, getattr(np, b))\n' > /tmp/site/sitecustomize.py; export GIT_DIR=$R/.devgit GIT_WORK_TREE=$R; git read-tree HEAD; git status --porcelain --untracked-files=no | head -3; python3 -c "import numpy,pandas,torch,recbole,scipy,sklearn;from recbole.config import Config;print(numpy.__version__,pandas.__version__,torch.__version__,scipy.__version__,sklearn.__version__,torch.cuda.is_available())" || exit 2; python3 results/sweep.py --jobs "$JOBS" --out /tmp/sw --deadline "$DEADLINE" --threads 2 --grace "$GRACE" 2>&1 | tee $OUT/sweep.txt; nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv; cd /tmp/sw && tar czf $OUT/runs.tgz records *.log; ls -la $OUT
