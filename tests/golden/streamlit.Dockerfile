# Rendered by spacehub for a streamlit space.
# uv from its wheel, in a stage of its own: mounted where it is needed, never in the image.
# No .pyc (they hold the install time): the same files on every rebuild of this stage, so the
# steps that mount it, whose cache keys follow its content, stay cached.
FROM python:3.11-slim AS uv
RUN --mount=type=secret,id=spacehub-ca,target=/run/spacehub-build/ca.crt \
    --mount=type=secret,id=spacehub-env,target=/run/spacehub-build/env,required=true \
    . /run/spacehub-build/env \
 && python3 -m pip install --quiet --disable-pip-version-check --no-cache-dir --no-compile --target /opt/uv uv==0.13.9

FROM python:3.11-slim
# The app's folder, its home and /data belong to the app's user, as on the Hub: an app may
# create files next to its code (Gradio's .gradio/), and a volume mounted on /data starts writable.
RUN useradd --create-home --uid 1000 user \
 && mkdir -p /data /home/user/app \
 && chown 1000:1000 /data /home/user /home/user/app
# Build-time only (ARG, not ENV): bytecode compiled here (import gradio: 2.7 s with it, 5.3 s
# without); uv's cache is another filesystem, so files are copied, not hardlinked.
ARG VIRTUAL_ENV=/opt/venv
ARG UV_CACHE_DIR=/root/.cache/uv
ARG UV_COMPILE_BYTECODE=1
ARG UV_LINK_MODE=copy
RUN --mount=type=bind,from=uv,source=/opt/uv,target=/opt/uv /opt/uv/bin/uv venv --quiet /opt/venv
RUN --mount=type=bind,from=uv,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=spacehub-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=spacehub-ca,target=/run/spacehub-build/ca.crt \
    --mount=type=secret,id=spacehub-env,target=/run/spacehub-build/env,required=true \
    . /run/spacehub-build/env && /opt/uv/bin/uv pip install streamlit==1.67.0
RUN --mount=type=bind,from=uv,source=/opt/uv,target=/opt/uv \
    --mount=type=cache,id=spacehub-uv,target=/root/.cache/uv,sharing=locked \
    --mount=type=secret,id=spacehub-ca,target=/run/spacehub-build/ca.crt \
    --mount=type=secret,id=spacehub-env,target=/run/spacehub-build/env,required=true \
    --mount=type=bind,source=app/requirements.txt,target=/tmp/spacehub/requirements.txt \
    . /run/spacehub-build/env && /opt/uv/bin/uv pip install -r /tmp/spacehub/requirements.txt streamlit==1.67.0

ENV PATH=/opt/venv/bin:$PATH VIRTUAL_ENV=/opt/venv HOME=/home/user PYTHONUNBUFFERED=1 STREAMLIT_BROWSER_GATHER_USAGE_STATS=false
USER user
WORKDIR /home/user/app
EXPOSE 7860
CMD ["streamlit", "run", "app.py", "--server.port", "7860", "--server.address", "0.0.0.0", "--server.headless", "true"]
COPY --chown=1000:1000 app/ /home/user/app/
