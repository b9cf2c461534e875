// The screenshots in www/docs/ (`node tests/js/screenshots.mjs`): the page in
// headless Chromium at 1440 px and at 390 px (dark), with what an admin
// meets — a VM's domain XML, a base shared by two disks, a chain whose
// backing file is missing, an image that does not record its backing format.
// Images made with qemu-img; dropped with trusted CDP drag events.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer } from '../support/server.mjs';
import { launch, dropFiles } from '../support/browser.mjs';
import { forgetBackingFormat, qemuImg } from '../support/images.mjs';

const OUT = resolve(fileURLToPath(new URL('../../www/docs', import.meta.url)));
const dir = mkdtempSync(join(tmpdir(), 'bce-shots-'));
const q = (...a) => qemuImg('create', '-q', '-f', 'qcow2', ...a);
q(join(dir, 'rhel9-base.qcow2'), '20G');
q('-F', 'qcow2', '-b', 'rhel9-base.qcow2', join(dir, 'web1-root.qcow2'));
q('-F', 'qcow2', '-b', 'web1-root.qcow2', join(dir, 'web1-snap.qcow2'));
q('-F', 'qcow2', '-b', 'rhel9-base.qcow2', join(dir, 'web1-logs.qcow2'));
q('-u', '-F', 'qcow2', '-b', 'data-base.qcow2', join(dir, 'web1-data.qcow2'), '50G');
q(join(dir, 'old.qcow2'), '20G');
q('-F', 'qcow2', '-b', 'old.qcow2', join(dir, 'old-top.qcow2'));
forgetBackingFormat(join(dir, 'old-top.qcow2'));
const DOMAIN = `<domain type='kvm'>
  <name>web1</name>
  <memory unit='GiB'>4</memory>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
${[['web1-snap.qcow2', 'vda'], ['web1-logs.qcow2', 'vdb'], ['web1-data.qcow2', 'vdc']]
  .map(([f, dev]) => `    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='/var/lib/libvirt/images/${f}'/>
      <target dev='${dev}' bus='virtio'/>
    </disk>
`).join('')}  </devices>
</domain>
`;

const server = await startServer();
const origin = `http://127.0.0.1:${server.address().port}`;
try {
  for (const [width, scheme, name] of [[1440, 'light', 'page-1440.png'], [390, 'dark', 'page-390-dark.png']]) {
    const b = await launch({ viewport: { width, height: 900 }, colorScheme: scheme });
    try {
      const page = await b.context.newPage();
      await page.goto(`${origin}/`);
      await page.locator('backing-chain-editor').evaluate((e) => e.ready);
      await dropFiles(page, 'backing-chain-editor', ['web1-snap.qcow2', 'web1-root.qcow2', 'rhel9-base.qcow2', 'web1-logs.qcow2', 'web1-data.qcow2', 'old-top.qcow2', 'old.qcow2'].map((n) => join(dir, n)));
      await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelectorAll('li[data-image]').length >= 7);
      await page.locator('backing-chain-editor').evaluate((e, x) => (e.domainXml = x), DOMAIN);
      await page.waitForFunction(() => document.querySelector('backing-chain-editor').shadowRoot.querySelector('.badge.disk'));
      await page.locator('backing-chain-editor li[data-image] > .row .name >> text=web1-data.qcow2').click();
      await page.locator('body').click({ position: { x: 1, y: 1 } });
      await page.waitForTimeout(200);
      await page.screenshot({ path: join(OUT, name), fullPage: true });
      console.log(join(OUT, name));
    } finally {
      await b.close();
    }
  }
} finally {
  server.close();
  rmSync(dir, { recursive: true, force: true });
}
