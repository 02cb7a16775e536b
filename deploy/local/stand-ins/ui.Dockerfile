# Stand-in for temporalio/ui: the pinned ui-server (bin/) with the ui-server module's own docker config
# template (TEMPORAL_ADDRESS, TEMPORAL_CORS_ORIGINS, port 8080).
FROM writeback-local/debian:bookworm
RUN groupadd -g 1000 temporal && useradd -u 1000 -g temporal -M temporal
COPY temporal-ui-server /home/ui-server/ui-server
COPY config /home/ui-server/config
WORKDIR /home/ui-server
USER temporal
EXPOSE 8080
CMD ["./ui-server", "--env", "docker", "start"]
