// TODO(portal): owned by a helper; see the brief.
export default async function render({ main }) { main.textContent = 'Coming soon.'; }
export async function browse({ main }) { main.textContent = 'Coming soon.'; }
