# syntax=docker/dockerfile:1
# The txmesh image: compiled JavaScript on a slim Node 20, production dependencies only, a non-root user.
#   docker build -t txmesh:0.1.0 .                    the operator command: coordinator, sidecar, injector
#   docker build --target lab -t txmesh-lab:0.1.0 .   the same plus the lab and the example services
#                                                     (`txmesh service inventory ...`, for examples.ecommerce)
# The production install is scripts/image/install-production.mjs, which test/image.test.ts runs too.

ARG NODE_BUILD_IMAGE=node:20-bookworm
ARG NODE_RUNTIME_IMAGE=node:20-bookworm-slim

# Builder: the full install (compiles better-sqlite3) and `tsc -b` (npm ci runs the root "prepare").
FROM ${NODE_BUILD_IMAGE} AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.base.json ./
COPY packages ./packages
COPY examples ./examples
COPY test ./test
COPY scripts ./scripts
RUN npm ci --no-audit --no-fund

# Production files of the operator command only: no lab, no example, no dev dependency.
FROM build AS operator-files
RUN node scripts/image/install-production.mjs /src /opt/txmesh \
      packages/protocol packages/client packages/coordinator packages/sidecar packages/cli

# The lab image adds the lab and the example services it runs.
FROM build AS lab-files
RUN node scripts/image/install-production.mjs /src /opt/txmesh \
      packages/protocol packages/client packages/participant-sdk packages/coordinator packages/sidecar \
      packages/cli examples/ecommerce packages/lab

FROM ${NODE_RUNTIME_IMAGE} AS runtime-base
ENV NODE_ENV=production
# A numeric non-root user, so Kubernetes can verify runAsNonRoot; the chart runs every container as 10001.
RUN groupadd --system --gid 10001 txmesh \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin txmesh \
 && mkdir -p /var/lib/txmesh /var/lib/txmesh-sidecar \
 && chown 10001:10001 /var/lib/txmesh /var/lib/txmesh-sidecar
WORKDIR /opt/txmesh

FROM runtime-base AS lab
COPY --from=lab-files /opt/txmesh /opt/txmesh
RUN ln -s /opt/txmesh/packages/cli/bin/txmesh.mjs /usr/local/bin/txmesh
USER 10001:10001
ENTRYPOINT ["txmesh"]
CMD ["help"]

# The default target (last stage): the operator command.
FROM runtime-base AS runtime
COPY --from=operator-files /opt/txmesh /opt/txmesh
RUN ln -s /opt/txmesh/packages/cli/bin/txmesh.mjs /usr/local/bin/txmesh
USER 10001:10001
EXPOSE 7000 7070 8443
ENTRYPOINT ["txmesh"]
CMD ["help"]
