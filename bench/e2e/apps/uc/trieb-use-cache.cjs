// @trieb.work/nextjs-turbo-redis-cache's Cache Components handler, as its README exports it.
const { redisCacheHandler } = require('@trieb.work/nextjs-turbo-redis-cache');

module.exports = redisCacheHandler;
