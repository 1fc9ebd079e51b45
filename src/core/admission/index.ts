// The admission pipeline: who a client is, and what it may do. One entry file for its users.
export { Admission, type AdmissionConfig, type AdmissionStats, type CertificateUser, type ConnectRefusal } from './admission.js';
export { ADMIN_ROLE, isAdmin, type AuthMethod, type Credentials, type Identity } from './identity.js';
export type { PeerCertificate, PeerInfo } from './peer.js';
export { loadAclFile, parseAcl, type AclAction, type AclRule, type SubscribeDecision } from './acl.js';
export { hashPassword, loadPasswordFile, setPassword, verifyPassword } from './passwords.js';
export type { JwtConfig } from './jwt.js';
export type { QuotaConfig } from './quotas.js';
