// Placeholder until the receive view lands.
export function startReceiving() {}
