# Stand-in for the official postgres image, from Debian's PostgreSQL 15 (the version the production profile
# ran on): the same environment (POSTGRES_USER, POSTGRES_PASSWORD), data directory and port.
FROM writeback-local/debian:bookworm
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PATH=/usr/lib/postgresql/15/bin:$PATH PGDATA=/var/lib/postgresql/data
RUN mkdir -p /var/lib/postgresql/data /var/run/postgresql && chown -R postgres:postgres /var/lib/postgresql /var/run/postgresql
USER postgres
EXPOSE 5432
ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]
