# Stand-in for temporalio/admin-tools: the pinned CLI and sql tool (bin/) and the server module's schema
# directory, at the paths of the official image.
FROM writeback-local/debian:bookworm
RUN groupadd -g 1000 temporal && useradd -u 1000 -g temporal -M temporal
COPY temporal temporal-sql-tool /usr/local/bin/
COPY schema /etc/temporal/schema
USER temporal
CMD ["sh", "-c", "trap exit INT HUP TERM; sleep infinity & wait"]
