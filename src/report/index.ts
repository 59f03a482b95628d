/** Public face of the report concern: `buildReport` (what `bench run` calls at its end) and the pure builders. */
export { buildReport, leaderboardJson, type ReportOptions, type ReportSummary } from './build.ts';
export { buildLeaderboard, DEFINITIONS, type Leaderboard, type LeaderboardRow } from './table.ts';
export { autoroundDeltas, buildCharts, paretoFrontier } from './specs.ts';
export { loadRuns } from './load.ts';
