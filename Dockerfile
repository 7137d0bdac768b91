# The engine's image: one image for web, worker, scheduler and migration (docker-compose.yml).
#
#   docker build -t ioc-scenario-engine .
#
# Three stages, so the image carries no compiler and no npm:
# 1. assets — the designer's npm packages (bpmn-js), from designer/package-lock.json;
# 2. build  — wheels of the engine and of every dependency at requirements.lock's versions;
#             durable-rules ships no wheel for Python 3.11, so it is compiled here;
# 3. the runtime — python:3.11-slim with those wheels installed, the npm packages and the sample
#             scenarios; data/ (organisation, calendar) and the vocabulary are in the wheel.

FROM node:20-slim AS assets
WORKDIR /designer
COPY designer/package.json designer/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error

FROM python:3.11-slim AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.lock pyproject.toml setup.py README.md ./
COPY data data
COPY engine engine
COPY integrations integrations
COPY worker worker
COPY designer designer
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c requirements.lock .

FROM python:3.11-slim
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels ioc-scenario-engine \
 && rm -rf /wheels \
 && useradd --create-home --uid 1000 ioc \
 && mkdir /app && chown ioc:ioc /app  # the embedded default writes var/ here
COPY --from=assets /designer/node_modules /opt/ioc/designer-assets
ENV IOC_DESIGNER_ASSETS=/opt/ioc/designer-assets \
    PYTHONUNBUFFERED=1
WORKDIR /app
# `ioc scenarios load scenarios` and `ioc demo` read the sample scenarios from here.
COPY scenarios scenarios
USER ioc
EXPOSE 5000
CMD ["ioc", "serve", "--host", "0.0.0.0", "--port", "5000"]
