# Stepgate worker and API image. Default command runs a worker; the API overrides it with
# `python -m api`. Configuration is environment only (see activities/config.py), e.g.
#   TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, STEPGATE_TASK_QUEUE, STEPGATE_API_KEYS_FILE,
#   STEPGATE_API_HOST, STEPGATE_API_PORT, STEPGATE_ENCRYPTION_KEY, STEPGATE_LOG_FORMAT.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN useradd --system --create-home --uid 10001 --user-group stepgate \
    && install -d -o stepgate -g stepgate /var/lib/stepgate

WORKDIR /app

# Dependencies first, from pyproject.toml alone, so code edits do not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt \
    && rm /tmp/requirements.txt

# The product only: no tests, benchmarks or operator scripts in the image.
COPY README.md worker.py ./
COPY activities ./activities
COPY api ./api
COPY workflows ./workflows
COPY definitions ./definitions
# Bytecode is compiled at build time: the tree is read-only to the service user.
RUN pip install --no-deps . && python -m compileall -q /app

# A container has no other place for local state; the API must listen beyond loopback.
ENV STEPGATE_DATA=/var/lib/stepgate \
    STEPGATE_LOG_FORMAT=json \
    STEPGATE_API_HOST=0.0.0.0 \
    STEPGATE_API_PORT=8000

USER stepgate
EXPOSE 8000
CMD ["python", "worker.py"]
