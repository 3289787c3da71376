# Rendered by spacehub for a gradio space.
FROM python:3.11-slim AS system
# /data belongs to the app's user so that a persistent volume mounted there starts writable.
RUN useradd --create-home --uid 1000 user && mkdir -p /data && chown 1000:1000 /data

# The CA bundle, package index and build secrets exist in this stage only: the final stage
# copies the installed environment, never them, and this stage's history is not its history.
FROM system AS deps
# Bytecode is compiled here (import gradio: 2.7 s with it, 5.3 s without). uv's throwaway cache
# sits on the same filesystem as the venv, so hardlinks replace copying every installed file.
ENV VIRTUAL_ENV=/opt/venv UV_NO_CACHE=1 UV_COMPILE_BYTECODE=1 UV_LINK_MODE=hardlink PIP_NO_CACHE_DIR=1
COPY spacehub-build/ /tmp/spacehub-build/
# uv from its wheel straight into a directory, and a venv without pip: neither needs ensurepip.
RUN . /tmp/spacehub-build/env \
 && python3 -m pip install --quiet --disable-pip-version-check --target /opt/uv uv==0.13.9 \
 && /opt/uv/bin/uv venv --quiet /opt/venv
RUN . /tmp/spacehub-build/env && /opt/uv/bin/uv pip install gradio==6.31.0 spaces==0.51.3

FROM system
COPY --from=deps /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv HOME=/home/user PYTHONUNBUFFERED=1 GRADIO_SERVER_NAME=0.0.0.0 GRADIO_SERVER_PORT=7860
USER user
WORKDIR /home/user/app
EXPOSE 7860
CMD ["python", "app.py"]
COPY --chown=1000:1000 app/ /home/user/app/
