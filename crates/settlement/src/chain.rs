//! The EVM side of settlement: the cumulative distributor contract (`contracts/` at the repository
//! root; its compiled artifact is embedded here), publishing roots, reading state and claiming.

use std::time::Duration;

use alloy::network::{EthereumWallet, TransactionBuilder};
use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionRequest;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol;
use alloy::sol_types::SolValue;
use tributary_core::EvmAddress;

use crate::{Claim, Hash};

sol! {
    #[sol(rpc)]
    contract CumulativeDistributor {
        function token() external view returns (address);
        function owner() external view returns (address);
        function epoch() external view returns (uint256);
        function root() external view returns (bytes32);
        function claimed(address account) external view returns (uint256);
        function setRoot(uint256 epoch_, bytes32 root_) external;
        function claim(address account, uint256 cumulativeAmount, bytes32 expectedRoot, bytes32[] calldata proof) external;
        function transferOwnership(address newOwner) external;
        event RootSet(uint256 indexed epoch, bytes32 root);
        event Claimed(address indexed account, uint256 amount, uint256 cumulativeAmount, uint256 indexed epoch);
        error NotOwner();
        error EpochNotIncreasing(uint256 current, uint256 given);
        error RootMismatch(bytes32 current, bytes32 expected);
        error InvalidProof();
        error NothingToClaim();
        error InsufficientFunds(uint256 available, uint256 due);
        error TransferFailed();
    }

    #[sol(rpc)]
    contract TestToken {
        function balanceOf(address account) external view returns (uint256);
        function transfer(address to, uint256 amount) external returns (bool);
        function mint(address to, uint256 amount) external;
    }
}

const DISTRIBUTOR_ARTIFACT: &str = include_str!("../../../contracts/artifacts/CumulativeDistributor.json");
const TEST_TOKEN_ARTIFACT: &str = include_str!("../../../contracts/artifacts/TestToken.json");

/// How long to wait for a transaction to be mined.
const RECEIPT_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("the private key is not 32 bytes of hex")]
    BadKey,
    #[error("the RPC URL {0:?} is not a valid URL")]
    BadUrl(String),
    #[error("no contract is deployed at {0}")]
    NoContract(EvmAddress),
    #[error("the contract at {contract} is owned by {owner}, not by this key's address {key}")]
    NotOwner { contract: EvmAddress, owner: EvmAddress, key: EvmAddress },
    #[error("the contract refused: {0}")]
    Reverted(String),
    #[error("the transaction {0} was mined but reverted")]
    Failed(String),
    #[error("chain RPC: {0}")]
    Rpc(String),
}

fn address(address: &EvmAddress) -> Address {
    Address::from(address.0)
}

fn evm(address: Address) -> EvmAddress {
    EvmAddress(address.into_array())
}

/// Explains a contract error in words, or passes a transport error on.
fn explain(error: alloy::contract::Error) -> ChainError {
    use CumulativeDistributor::CumulativeDistributorErrors as E;
    let Some(decoded) = error.as_decoded_interface_error::<E>() else {
        return rpc(error);
    };
    ChainError::Reverted(match decoded {
        E::NotOwner(_) => "only the contract's owner may do this".into(),
        E::EpochNotIncreasing(e) => {
            format!("epoch {} is not after the contract's current epoch {}", e.given, e.current)
        }
        E::RootMismatch(e) => format!(
            "the contract's root is now {} (the claim expected {}); fetch a fresh proof",
            e.current, e.expected
        ),
        E::InvalidProof(_) => "the proof does not prove this account and amount against the root".into(),
        E::NothingToClaim(_) => "nothing is due: this cumulative amount has been claimed already".into(),
        E::InsufficientFunds(e) => {
            format!(
                "the contract holds {} tokens but {} are due; it pays nothing until funded",
                e.available, e.due
            )
        }
        E::TransferFailed(_) => "the token refused the transfer".into(),
    })
}

/// A transport or RPC failure, with its chain of causes (the outermost message alone often says
/// only "error sending request").
fn rpc(error: impl std::error::Error) -> ChainError {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    ChainError::Rpc(message)
}

/// A connection to a chain through one RPC endpoint, signing with one key.
#[derive(Clone)]
pub struct Wallet {
    provider: DynProvider,
    sender: Address,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet").field("sender", &self.sender).finish_non_exhaustive()
    }
}

impl Wallet {
    /// Connects to `rpc_url` with `private_key` (hex, `0x` optional).
    pub fn new(rpc_url: &str, private_key: &str) -> Result<Wallet, ChainError> {
        let signer: PrivateKeySigner = private_key.trim().parse().map_err(|_| ChainError::BadKey)?;
        let sender = signer.address();
        let url = rpc_url.parse().map_err(|_| ChainError::BadUrl(rpc_url.to_owned()))?;
        // Nonces are asked of the chain for every transaction, not cached: the same key may sign
        // from several processes (a node and an operator's CLI), and a cached nonce would then
        // leave transactions stuck behind a gap.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        Ok(Wallet { provider, sender })
    }

    pub fn address(&self) -> EvmAddress {
        evm(self.sender)
    }

    pub async fn chain_id(&self) -> Result<u64, ChainError> {
        self.provider.get_chain_id().await.map_err(rpc)
    }

    async fn deploy(&self, artifact: &str, constructor_args: Vec<u8>) -> Result<EvmAddress, ChainError> {
        let artifact: serde_json::Value =
            serde_json::from_str(artifact).expect("the embedded artifact is JSON");
        let bytecode = artifact["bytecode"].as_str().expect("the artifact has bytecode");
        let mut code =
            hex::decode(bytecode.trim_start_matches("0x")).expect("the artifact's bytecode is hex");
        code.extend_from_slice(&constructor_args);
        let request =
            TransactionRequest::default().with_from(self.sender).with_deploy_code(Bytes::from(code));
        let receipt = self
            .provider
            .send_transaction(request)
            .await
            .map_err(rpc)?
            .with_timeout(Some(RECEIPT_TIMEOUT))
            .get_receipt()
            .await
            .map_err(rpc)?;
        if !receipt.status() {
            return Err(ChainError::Failed(receipt.transaction_hash.to_string()));
        }
        receipt
            .contract_address
            .map(evm)
            .ok_or_else(|| ChainError::Rpc("no contract address in the receipt".into()))
    }

    /// Deploys the distributor paying `token`, owned by `owner`.
    pub async fn deploy_distributor(
        &self,
        token: &EvmAddress,
        owner: &EvmAddress,
    ) -> Result<EvmAddress, ChainError> {
        self.deploy(DISTRIBUTOR_ARTIFACT, (address(token), address(owner)).abi_encode_params()).await
    }

    /// Deploys the repository's test ERC-20 (for local chains and demos); the sender may mint.
    pub async fn deploy_test_token(&self) -> Result<EvmAddress, ChainError> {
        self.deploy(TEST_TOKEN_ARTIFACT, Vec::new()).await
    }

    pub async fn mint_test_token(
        &self,
        token: &EvmAddress,
        to: &EvmAddress,
        amount: u128,
    ) -> Result<Mined, ChainError> {
        let token = TestToken::new(address(token), &self.provider);
        let call = token.mint(address(to), U256::from(amount));
        self.mined(call.send().await.map_err(rpc)?).await
    }

    /// A plain ERC-20 transfer from this wallet: what paying one payee per inference on chain costs.
    pub async fn token_transfer(
        &self,
        token: &EvmAddress,
        to: &EvmAddress,
        amount: u128,
    ) -> Result<Mined, ChainError> {
        let token = TestToken::new(address(token), &self.provider);
        let call = token.transfer(address(to), U256::from(amount));
        self.mined(call.send().await.map_err(rpc)?).await
    }

    pub async fn token_balance(&self, token: &EvmAddress, owner: &EvmAddress) -> Result<u128, ChainError> {
        let token = TestToken::new(address(token), &self.provider);
        let balance = token.balanceOf(address(owner)).call().await.map_err(rpc)?;
        u128::try_from(balance).map_err(|_| ChainError::Rpc("a token balance above 2^128".into()))
    }

    async fn mined(
        &self,
        pending: alloy::providers::PendingTransactionBuilder<alloy::network::Ethereum>,
    ) -> Result<Mined, ChainError> {
        let receipt = pending.with_timeout(Some(RECEIPT_TIMEOUT)).get_receipt().await.map_err(rpc)?;
        let tx_hash = receipt.transaction_hash.to_string();
        match receipt.status() {
            true => Ok(Mined { tx_hash, gas_used: receipt.gas_used }),
            false => Err(ChainError::Failed(tx_hash)),
        }
    }

    /// The distributor at `contract`, driven by this wallet.
    pub fn distributor(&self, contract: &EvmAddress) -> Distributor {
        Distributor { wallet: self.clone(), contract: address(contract) }
    }
}

/// A deployed cumulative distributor.
#[derive(Clone, Debug)]
pub struct Distributor {
    wallet: Wallet,
    contract: Address,
}

/// What a mined transaction cost.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mined {
    pub tx_hash: String,
    pub gas_used: u64,
}

impl Distributor {
    fn contract(&self) -> CumulativeDistributor::CumulativeDistributorInstance<&DynProvider> {
        CumulativeDistributor::new(self.contract, &self.wallet.provider)
    }

    pub fn address(&self) -> EvmAddress {
        evm(self.contract)
    }

    /// Checks there is a contract at the address and this wallet owns it: what a node checks on
    /// start before it relies on publishing roots there.
    pub async fn check_owner(&self) -> Result<(), ChainError> {
        let code = self.wallet.provider.get_code_at(self.contract).await.map_err(rpc)?;
        if code.is_empty() {
            return Err(ChainError::NoContract(self.address()));
        }
        let owner = evm(self.contract().owner().call().await.map_err(rpc)?);
        if owner != self.wallet.address() {
            return Err(ChainError::NotOwner { contract: self.address(), owner, key: self.wallet.address() });
        }
        Ok(())
    }

    pub async fn token(&self) -> Result<EvmAddress, ChainError> {
        Ok(evm(self.contract().token().call().await.map_err(rpc)?))
    }

    /// The contract's current epoch and root.
    pub async fn current(&self) -> Result<(u64, Hash), ChainError> {
        let epoch = self.contract().epoch().call().await.map_err(rpc)?;
        let root = self.contract().root().call().await.map_err(rpc)?;
        let epoch = u64::try_from(epoch).map_err(|_| ChainError::Rpc("an epoch above 2^64".into()))?;
        Ok((epoch, root.0))
    }

    pub async fn claimed(&self, account: &EvmAddress) -> Result<u128, ChainError> {
        let claimed = self.contract().claimed(address(account)).call().await.map_err(rpc)?;
        u128::try_from(claimed).map_err(|_| ChainError::Rpc("a claimed amount above 2^128".into()))
    }

    /// Publishes an epoch's root (owner only; epochs strictly increase).
    pub async fn set_root(&self, epoch: u64, root: &Hash) -> Result<Mined, ChainError> {
        let contract = self.contract();
        let call = contract.setRoot(U256::from(epoch), B256::from(*root));
        self.wallet.mined(call.send().await.map_err(explain)?).await
    }

    /// The transaction that set `epoch`'s root, found in the contract's `RootSet` events: how a
    /// node that stopped between publishing and recording learns what it published.
    pub async fn root_set_tx(&self, epoch: u64) -> Result<Option<String>, ChainError> {
        use alloy::sol_types::SolEvent;
        let filter = alloy::rpc::types::Filter::new()
            .address(self.contract)
            .event_signature(CumulativeDistributor::RootSet::SIGNATURE_HASH)
            .topic1(B256::from(U256::from(epoch)))
            .from_block(0);
        let logs = self.wallet.provider.get_logs(&filter).await.map_err(rpc)?;
        Ok(logs.last().and_then(|log| log.transaction_hash).map(|hash| hash.to_string()))
    }

    /// Hands the contract to another owner (owner only).
    pub async fn transfer_ownership(&self, new_owner: &EvmAddress) -> Result<Mined, ChainError> {
        let contract = self.contract();
        let call = contract.transferOwnership(address(new_owner));
        self.wallet.mined(call.send().await.map_err(explain)?).await
    }

    /// Claims for `claim.address` (the tokens go to that address, whoever sends the claim).
    pub async fn claim(&self, claim: &Claim) -> Result<Mined, ChainError> {
        let proof: Vec<B256> = claim.proof.iter().map(|hash| B256::from(*hash)).collect();
        let contract = self.contract();
        let call = contract.claim(
            address(&claim.address),
            U256::from(claim.cumulative_amount),
            B256::from(claim.root),
            proof,
        );
        self.wallet.mined(call.send().await.map_err(explain)?).await
    }
}
