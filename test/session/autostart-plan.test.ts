import { describe, expect, it } from 'vitest';
import { type AutostartCandidate, autostartPlan } from '../../src/session/autostart-plan.js';

const vm = (name: string, autostart = true, state = 'stopped'): AutostartCandidate => ({
  name,
  autostart,
  state,
});

describe('autostartPlan: which VMs start at service start, the shown one first', () => {
  it.each([
    {
      what: 'the shown VM leads, the others follow in config order',
      vms: [vm('a'), vm('b'), vm('c')],
      shown: 'b',
      plan: { lead: 'b', rest: ['a', 'c'] },
    },
    {
      what: 'no lead when nothing is shown yet',
      vms: [vm('a'), vm('b')],
      shown: null,
      plan: { lead: null, rest: ['a', 'b'] },
    },
    {
      what: 'no lead when the shown display is not a VM (admin)',
      vms: [vm('a')],
      shown: 'admin',
      plan: { lead: null, rest: ['a'] },
    },
    {
      what: 'a shown VM without autostart does not lead, and does not start',
      vms: [vm('a', false), vm('b')],
      shown: 'a',
      plan: { lead: null, rest: ['b'] },
    },
    {
      what: 'an adopted (running) shown VM is not started again; nor is any other running one',
      vms: [vm('a', true, 'running'), vm('b'), vm('c', true, 'running')],
      shown: 'a',
      plan: { lead: null, rest: ['b'] },
    },
    {
      what: 'VMs without autostart stay stopped',
      vms: [vm('a'), vm('b', false), vm('c')],
      shown: 'c',
      plan: { lead: 'c', rest: ['a'] },
    },
  ])('$what', ({ vms, shown, plan }) => {
    expect(autostartPlan(vms, shown)).toEqual(plan);
  });
});
