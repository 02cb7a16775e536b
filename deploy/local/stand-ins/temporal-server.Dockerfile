# Stand-in for temporalio/server, from the pinned server binary the production profile runs (bin/) and the
# upstream image's own entrypoint (from the server module): the embedded config template, driven by the
# same environment variables as the official image.
FROM writeback-local/debian:bookworm
RUN groupadd -g 1000 temporal && useradd -u 1000 -g temporal -M temporal && mkdir -p /etc/temporal
COPY temporal-server /usr/local/bin/temporal-server
COPY entrypoint.sh /etc/temporal/entrypoint.sh
# the module cache keeps files read-only, without the execute bit
RUN chmod 0755 /etc/temporal/entrypoint.sh
WORKDIR /etc/temporal
USER temporal
# bash: the upstream entrypoint is written for busybox sh (set -o pipefail), which dash lacks
CMD ["/bin/bash", "/etc/temporal/entrypoint.sh"]
