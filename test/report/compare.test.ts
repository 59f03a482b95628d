/** Escaping helpers, against independent expectations. (The comparison tests moved to test/stats/compare.test.ts.) */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { escapeHtml, jsonForScript, slug } from '../../src/report/escape.ts';

test('escaping: HTML text, JSON inside <script>, slugs', () => {
  const x = '<img src=x onerror=alert(1)>';
  assert.equal(escapeHtml(x), '&lt;img src=x onerror=alert(1)&gt;');
  assert.equal(escapeHtml(`"'&`), '&quot;&#39;&amp;');
  const v = { name: '</script><script>alert(1)</script>', sep: '\u2028', amp: '&' };
  const s = jsonForScript(v);
  assert.ok(!/<\/?script/i.test(s) && !s.includes('<') && !s.includes('\u2028'));
  assert.deepEqual(JSON.parse(s), v);
  const sl = slug('../../etc/passwd');
  assert.match(sl, /^[a-z0-9-]+$/);
  assert.notEqual(slug('a b'), slug('a-b'));
});
