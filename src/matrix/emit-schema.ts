/**
 * Writes models.schema.json (the JSON Schema editors use for models.json) from the zod
 * schema in models.ts. Run: node --import tsx src/matrix/emit-schema.ts [out]
 */
import { writeFileSync } from 'node:fs';
import { modelsJsonSchema } from './models.ts';

const out = process.argv[2] ?? 'models.schema.json';
writeFileSync(out, JSON.stringify(modelsJsonSchema(), null, 2) + '\n');
process.stderr.write(`wrote ${out}\n`);
