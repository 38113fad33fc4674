// Prometheus scrapes this (see prometheus.yml); `?format=json` answers stats() instead.
export { GET } from 'cachekit-next/metrics';
