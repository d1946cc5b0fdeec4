# The collector in one container: supervisord runs every actor, as `python run.py` does on a host.
#   docker build -t tdc:local --build-arg TDC_COMMIT=$(git rev-parse HEAD) .
#   docker run --shm-size=640m -e API_TOKEN=... -p 127.0.0.1:8000:8000 tdc:local
# /dev/shm must hold the stack's rings (~184 MB, ~504 MB recording): Docker's default is 64 MB, and
# run.py refuses to start with a message naming the size it needs. compose.yaml sets it.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
# the pinned dependencies first: a code change does not reinstall them
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .
RUN useradd --system --uid 10001 --user-group --home-dir /app --shell /usr/sbin/nologin tdc \
    && mkdir -p /app/data /app/logs /app/run \
    && chown -R tdc:tdc /app/data /app/logs /app/run

# the git commit of the build (tdc_build_info{commit}); .git is not copied into the image
ARG TDC_COMMIT=unknown
ENV TDC_COMMIT=${TDC_COMMIT} \
    HTTP_HOST=0.0.0.0 \
    HTTP_PORT=8000 \
    TDC_ARGS=--sim

USER tdc
EXPOSE 8000
VOLUME ["/app/data", "/app/logs"]
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('HTTP_PORT', '8000'), timeout=4)"]
# TDC_ARGS: --sim (the built-in exchange, the default), "" (the live venues), --replay DIR
# SIGTERM (docker stop) stops supervisord and every actor cleanly; give it 40 s (the recorder's 30)
CMD ["sh", "-c", "exec python run.py $TDC_ARGS"]
