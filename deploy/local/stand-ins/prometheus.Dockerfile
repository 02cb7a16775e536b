# Stand-in for prom/prometheus, from Debian's prometheus package (2.42, not the compose file's 2.55: the
# rule and scrape formats writeback uses are the same in both).
FROM writeback-local/debian:bookworm
RUN mkdir -p /prometheus && chown prometheus:prometheus /prometheus
USER prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
