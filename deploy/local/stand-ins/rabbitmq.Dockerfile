# Stand-in for rabbitmq:3.10-management, from Debian's rabbitmq-server 3.10 (management plugin included):
# configuration, definitions and enabled plugins read from /etc/rabbitmq as in the official image.
FROM writeback-local/debian:bookworm
RUN mkdir -p /var/lib/rabbitmq /var/log/rabbitmq && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /var/log/rabbitmq
USER rabbitmq
ENV HOME=/var/lib/rabbitmq
EXPOSE 5672 15672
CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]
