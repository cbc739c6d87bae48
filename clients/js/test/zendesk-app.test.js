import { test } from 'node:test';
import assert from 'node:assert/strict';

import { dialableNumber } from '../zendesk-app.js';

test('click-to-dial numbers are dialled as E.164, whatever formatting Zendesk shows', () => {
  assert.equal(dialableNumber('+44 7700 900010'), '+447700900010');
  assert.equal(dialableNumber('+1 (555) 010-0100'), '+15550100100');
  assert.equal(dialableNumber('+1.555.010.0100'), '+15550100100');
  assert.equal(dialableNumber('0044 20 7946 0000'), '+442079460000');
  assert.equal(dialableNumber('07700 900011'), '07700900011', 'a national number stays one (Connect refuses it)');
});
