FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
# The image is a deployment: a real SECRET_KEY is required and the site is HTTPS only
# (see the README's Deployment section to relax it for a trial on localhost).
ENV PAPERBOY_PRODUCTION=1
WORKDIR /app
# Runtime dependencies only from the lock: pinned wheels whose sha256 is in it, or the
# build fails. Then the project itself, without dependencies, built by the locked setuptools.
COPY requirements.lock ./
RUN pip install --no-cache-dir --require-hashes --only-binary :all: -r requirements.lock
COPY pyproject.toml README.md ./
COPY paperboy paperboy
COPY subscriptions subscriptions
COPY digest digest
COPY pages pages
RUN pip install --no-cache-dir --no-deps --no-build-isolation . && pip check
COPY . .
RUN useradd --create-home paperboy && mkdir -p var && chown paperboy var
USER paperboy
EXPOSE 8000
CMD ["gunicorn", "paperboy.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
