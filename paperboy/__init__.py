import os

# Matching runs its scoring in one process per core, each with many small matrix
# products; a threaded BLAS in each would fight the others for the same cores (and spin).
# Set before numpy is first imported; an operator's own setting wins.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
