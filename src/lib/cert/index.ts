// The certificate check as other commands use it: `karp kubeconfig rewrite` checks the VIP before pointing a
// kubeconfig at it, `karp status` reports the VIP's certificate.
export {type SanAdvice, sanAdvice} from './advice.js'
export {type CaCertificate, caFromFile, caFromKubeConfig} from './ca.js'
export {
  certCheckExitCode,
  type CertCheckPlan,
  type CheckCertResult,
  type ClusterCheckOptions,
  type DistributionInfo,
  planClusterCheck,
  planServerCheck,
  runCertCheck,
  type TargetReport,
} from './check-cert.js'
export {type DetectedDistribution, detectDistribution, DISTRIBUTION_NAMES, DISTRIBUTIONS, type DistributionId} from './distribution.js'
export {
  type Endpoint,
  type FetchedChain,
  type FetchFailureKind,
  fetchServedChain,
  formatEndpoint,
  type HandshakeTiming,
} from './fetch-chain.js'
export {type CertificateFacts, parseCertificate, pemCertificates} from './parse.js'
export {type CertTarget, chooseInstall, clusterTargets, isControlPlaneNode, parseServerAddress} from './targets.js'
export {
  checkEndpoint,
  type CheckEndpointOptions,
  type CheckOutcome,
  type CheckStatus,
  checkTrust,
  checkValidity,
  checkEntries,
  checkVipSan,
  type EndpointChecks,
  type EndpointReport,
  type EndpointStatus,
  EXPIRY_WARNING_DAYS,
  judgeServedChain,
  type TrustCheck,
  type ValidityCheck,
  type VipSanCheck,
} from './verdict.js'
export {type ChainTrust, verifyChain} from './verify-chain.js'
