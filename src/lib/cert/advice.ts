import {DISTRIBUTION_NAMES, type DistributionId} from './distribution.js'

/** How to get the VIP into every API server certificate, for one distribution, with the VIP filled in. */
export interface SanAdvice {
  distribution: DistributionId
  /** What to change, in one line. */
  summary: string
  /** File edits and commands, in order. */
  steps: string[]
}

export interface AdviceContext {
  /** Control-plane node addresses, where a command takes them (talosctl -n). */
  controlPlaneAddresses?: string[]
}

function rancherConfigAdvice(vip: string, product: 'rke2' | 'k3s'): SanAdvice {
  const file = `/etc/rancher/${product}/config.yaml`
  const service = product === 'rke2' ? 'rke2-server' : 'k3s'
  return {
    distribution: product,
    summary: `add ${vip} to tls-san in ${file} on every server node, then restart ${service}`,
    steps: [
      `on every server node, add the VIP to the tls-san list in ${file} (keep the entries already there):\n  tls-san:\n    - "${vip}"`,
      `restart the server, one node at a time: sudo systemctl restart ${service}\n(${DISTRIBUTION_NAMES[product]} reissues its serving certificate with the new SAN as it starts)`,
    ],
  }
}

/** The change that puts the VIP among the API server certificate's IP SANs, for the detected distribution. */
export function sanAdvice(distribution: DistributionId, vip: string, context: AdviceContext = {}): SanAdvice {
  switch (distribution) {
    case 'rke':
      return {
        distribution,
        summary: `add ${vip} to authentication.sans in cluster.yml, then run rke up`,
        steps: [
          `in cluster.yml, add the VIP to authentication.sans (keep the entries already there):\n  authentication:\n    strategy: x509\n    sans:\n      - "${vip}"`,
          'rke up --config cluster.yml\n(RKE reissues the kube-apiserver certificate on every controlplane node and restarts it)',
          `for an RKE cluster managed by Rancher, edit the cluster as YAML in Rancher instead: rancher_kubernetes_engine_config.authentication.sans: ["${vip}"]`,
        ],
      }
    case 'rke2':
    case 'k3s':
      return rancherConfigAdvice(vip, distribution)
    case 'kubeadm':
      return {
        distribution,
        summary: `add ${vip} to apiServer.certSANs in the kubeadm ClusterConfiguration, then regenerate the API server certificate on every control-plane node`,
        steps: [
          "kubectl -n kube-system get configmap kubeadm-config -o jsonpath='{.data.ClusterConfiguration}' > kubeadm.yaml",
          `in kubeadm.yaml, add the VIP to apiServer.certSANs (keep the entries already there):\n  apiServer:\n    certSANs:\n      - "${vip}"`,
          'make the same change in the cluster, so joins and upgrades keep it: kubectl -n kube-system edit configmap kubeadm-config',
          'on each control-plane node in turn, with kubeadm.yaml copied there (kubeadm keeps an existing certificate, so move it away first):\n' +
            '  sudo mkdir -p /root/apiserver-cert-old && sudo mv /etc/kubernetes/pki/apiserver.crt /etc/kubernetes/pki/apiserver.key /root/apiserver-cert-old/\n' +
            '  sudo kubeadm init phase certs apiserver --config kubeadm.yaml',
          "then restart that node's kube-apiserver static pod (the kubelet stops it when its manifest leaves the directory):\n" +
            '  sudo mv /etc/kubernetes/manifests/kube-apiserver.yaml /etc/kubernetes/ && sleep 20 && sudo mv /etc/kubernetes/kube-apiserver.yaml /etc/kubernetes/manifests/',
        ],
      }
    case 'talos': {
      const nodes = context.controlPlaneAddresses?.length ? context.controlPlaneAddresses.join(',') : '<control-plane node IPs>'
      return {
        distribution,
        summary: `add ${vip} to cluster.apiServer.certSANs in the control-plane machine config (machine.certSANs covers only the Talos API certificate)`,
        steps: [
          `talosctl -n ${nodes} patch machineconfig --patch '{"cluster": {"apiServer": {"certSANs": ["${vip}"]}}}'\n(Talos reissues the API server certificate and restarts kube-apiserver, no reboot)`,
          'add the same patch to the config you generate machine configs from (talosctl gen config --config-patch-control-plane), so new nodes get it',
        ],
      }
    }
    case 'k0s':
      return {
        distribution,
        summary: `add ${vip} to spec.api.sans in the k0s configuration of every controller, then restart k0s`,
        steps: [
          `on every controller, add the VIP to spec.api.sans in /etc/k0s/k0s.yaml (with k0sctl: spec.k0s.config.spec.api.sans in k0sctl.yaml, then k0sctl apply):\n  spec:\n    api:\n      sans:\n        - "${vip}"`,
          'restart k0s, one controller at a time: sudo systemctl restart k0scontroller\n(k0s reissues the API server certificate with the new SAN as it starts)',
        ],
      }
    case 'unknown':
      return {
        distribution,
        summary: `add ${vip} as an IP Subject Alternative Name to the serving certificate of every API server`,
        steps: [
          `on every control-plane node, reissue the certificate kube-apiserver serves (its --tls-cert-file) from the cluster CA with IP:${vip} added to its SANs, keeping the SANs it has`,
          'restart each kube-apiserver so it loads the new certificate',
        ],
      }
  }
}
