# KOLE's image: kole-apiserver, kole-admin, kole-agent and kole-edge-sim on Debian
# bookworm-slim, running as the non-root user kole (65532).
#
#   make image                     # docker build -t kole:dev .
#   make image IMAGE=registry.example.com/kole:v0.1.0
#
# The runtime stage holds only the shared libraries the binaries link to
# (hack/image-packages.txt, also read by hack/build-rootfs.sh, which builds the
# same tree without Docker for the tests). The Helm chart runs it with a
# read-only root filesystem; the data directory /var/lib/kole is a volume.

# --- build -------------------------------------------------------------------
FROM debian:bookworm AS build

# The dependency script first, so that its layer survives source changes.
COPY hack/install-deps.sh /src/hack/install-deps.sh
RUN bash /src/hack/install-deps.sh && rm -rf /var/lib/apt/lists/*

COPY . /src
WORKDIR /src
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DKOLE_BUILD_TESTS=OFF -DKOLE_BUILD_BENCH=OFF \
 && cmake --build /build --target kole-apiserver kole-admin kole-agent kole-edge-sim \
 && mkdir -p /out \
 && for b in kole-apiserver kole-admin kole-agent kole-edge-sim; do \
      objcopy --strip-debug "/build/bin/$b" "/out/$b"; \
    done

# --- runtime -----------------------------------------------------------------
FROM debian:bookworm-slim

COPY hack/image-packages.txt hack/image-layout.sh /tmp/kole/
RUN apt-get update \
 && sed -e 's/#.*//' -e 's/[[:space:]]//g' -e '/^$/d' /tmp/kole/image-packages.txt \
      | xargs apt-get install -y --no-install-recommends \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
 && bash /tmp/kole/image-layout.sh / \
 && rm -rf /tmp/kole

COPY --from=build /out/kole-apiserver /out/kole-admin /out/kole-agent /out/kole-edge-sim /usr/bin/

USER 65532:65532
WORKDIR /
EXPOSE 8443
ENTRYPOINT ["/usr/bin/kole-apiserver"]
CMD ["--help"]

LABEL org.opencontainers.image.title="KOLE" \
      org.opencontainers.image.description="kole-apiserver: far-edge fleets as the Kubernetes aggregated API edge.kole.io/v1alpha1"
