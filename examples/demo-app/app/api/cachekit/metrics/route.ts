// Prometheus metrics of this server (prom-client); `?format=json` for the plain stats() object.
export { GET } from 'cachekit-next/metrics';
