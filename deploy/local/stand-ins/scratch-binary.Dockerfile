# One binary alone (the local Kubernetes' pause, CoreDNS and Temporal CLI images): FROM scratch for a static
# one, BASE=writeback-local/debian:bookworm for one linked against libc (the Temporal CLI).
ARG BASE=scratch
FROM ${BASE}
ARG BINARY
COPY ${BINARY} /entrypoint
USER 65532:65532
ENTRYPOINT ["/entrypoint"]
