import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** The same app as ../isr-app on Next 15.5: the handler keeps working on the previous major. */
/** @type {import('next').NextConfig} */
export default {
  cacheHandler: require.resolve('cachekit-next/handler'),
  cacheMaxMemorySize: 0,
  distDir: process.env.NEXT_DIST_DIR || '.next',
  generateBuildId: process.env.E2E_BUILD_ID ? async () => process.env.E2E_BUILD_ID : undefined,
};
