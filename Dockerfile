# One image for all six services; the command picks which one runs:
#   docker run syncorders:0.1.0 serve orders --port 8003
# The default command serves the gateway.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# setup.py reads README.md for the package description, so it is part of the build.
COPY setup.py README.md ./
COPY contracts ./contracts
COPY services ./services
COPY orchestrator ./orchestrator
# A regular (not editable) install, so the source folder can go afterwards.
RUN pip install ".[postgres]" \
    && rm -rf /src

# A fixed numeric user, so Kubernetes' runAsNonRoot can check it without a name lookup.
RUN groupadd --system --gid 10001 syncorders \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin syncorders \
    && mkdir -p /var/lib/syncorders \
    && chown 10001:10001 /var/lib/syncorders

# In a container the services must listen beyond loopback. The data folder only holds
# SQLite files when no PostgreSQL URL is given.
ENV SYNCORDERS_BIND_HOST=0.0.0.0 \
    SYNCORDERS_DATA_DIR=/var/lib/syncorders

USER 10001:10001
WORKDIR /var/lib/syncorders
# gateway 8000, auth 8001, profiles 8002, orders 8003, billing 8004, notifications 8005
EXPOSE 8000-8005

# Exec form: syncorders is PID 1 and gets the stop signal itself (a shell form would put
# /bin/sh there, which does not pass it on). It catches SIGTERM explicitly, drains and
# exits 0; PID 1 has no default action to fall back on.
STOPSIGNAL SIGTERM
ENTRYPOINT ["syncorders"]
CMD ["serve", "gateway"]
