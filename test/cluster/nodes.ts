// Only for install.test.ts and status.test.ts until their move to real-node labs lands (test/global-setup.ts
// runs kwok for them until then); delete this file then. Fake nodes are bench/kwok-nodes.ts's now.
export {controlPlaneNode, createFakeNodes, deleteFakeNodes, setNodeReady, workerNode} from '../../bench/kwok-nodes.js'
