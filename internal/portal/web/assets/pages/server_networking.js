// TODO(portal): owned by a helper.
export default async function render({ main }, server) { main.append(document.createTextNode('Coming soon: ' + server.name)); }
