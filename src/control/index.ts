/** Public face of the control plane: JSON-RPC server, guest channels, auth, policy, audit, transfers. */
export { type AuditEntry, type AuditLog, openAuditLog, summarizeParams } from './audit.js';
export {
  type Authenticator,
  fileAuthenticator,
  passwdPath,
  readPasswordFile,
  verifyPassword,
  writePasswordFile,
} from './auth.js';
export { connectSocket, openChannel, openDevice, RpcClient } from './client.js';
export { type ConfirmFn, type ControlLimits, defaultLimits } from './core.js';
export { coreMethods } from './core-methods.js';
export { attachGuestChannel, type GuestChannel, type GuestChannelOptions } from './guest-channel.js';
export { type HostUpdateOptions, hostUpdateMethods, type Slot } from './host-update.js';
export { type CallContext, type Caller, defineMethod, type RpcMethod } from './method.js';
export {
  type ControlPlane,
  type ControlPlaneHooks,
  guestChannelPath,
  guestChannelQemuArgs,
  startControlPlane,
} from './plane.js';
export { compilePolicy, decide, globMatch, type PolicyAction, type PolicyRule } from './policy.js';
export { type ControlServer, type ControlServerOptions, createControlServer } from './server.js';
export { type SendFileOptions, sendFile, sha256File } from './transfer-client.js';
export { IMAGE_EXTENSIONS, type ImageUploadOptions, imageUploadMethods } from './upload.js';
