// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity ^0.8.24;

/// The two calls of WETH the settlement makes.
interface IWETH {
    function transferFrom(address from, address to, uint256 amount) external returns (bool);
}

/// The one call of an ERC-721 the settlement makes.
interface IERC721Transfer {
    function transferFrom(address from, address to, uint256 tokenId) external;
}

/// SothebAIs settlement: both legs of a sale in one transaction. WETH goes from the
/// winner to the consignor (less the fee, to the fee recipient) and the NFT from the
/// consignor to the winner; either both happen or neither. Only the operator that
/// deployed it may settle, and an auction id settles once.
///
/// The winner must have approved this contract for the price in WETH, and the
/// consignor for the token (`approve` or `setApprovalForAll`). The NFT moves with
/// `transferFrom`: a winner is a wallet that signed a link, not a contract that must
/// acknowledge tokens.
contract SothebaisSettlement {
    address public immutable operator;
    IWETH public immutable weth;
    address public immutable feeRecipient;
    /// The fee in basis points of the price (at most 10000).
    uint16 public immutable feeBps;

    /// Auction ids (the backend's UUID, left-aligned in 32 bytes) already settled.
    mapping(bytes32 => bool) public settled;

    event Settled(
        bytes32 indexed auctionId,
        address indexed winner,
        address indexed consignor,
        address nft,
        uint256 tokenId,
        uint256 price,
        uint256 fee
    );

    error NotOperator(address caller);
    error AlreadySettled(bytes32 auctionId);
    error FeeTooHigh(uint16 feeBps);
    error PaymentFailed(address winner, uint256 amount);

    constructor(address weth_, address feeRecipient_, uint16 feeBps_) {
        if (feeBps_ > 10000) revert FeeTooHigh(feeBps_);
        operator = msg.sender;
        weth = IWETH(weth_);
        feeRecipient = feeRecipient_;
        feeBps = feeBps_;
    }

    /// Settles `auctionId`: `price` WETH from `winner`, the token from `consignor`.
    function settle(
        bytes32 auctionId,
        address nft,
        uint256 tokenId,
        address consignor,
        address winner,
        uint256 price
    ) external {
        if (msg.sender != operator) revert NotOperator(msg.sender);
        if (settled[auctionId]) revert AlreadySettled(auctionId);
        settled[auctionId] = true;
        uint256 fee = (price * feeBps) / 10000;
        if (!weth.transferFrom(winner, consignor, price - fee)) revert PaymentFailed(winner, price);
        if (fee > 0 && !weth.transferFrom(winner, feeRecipient, fee)) revert PaymentFailed(winner, price);
        IERC721Transfer(nft).transferFrom(consignor, winner, tokenId);
        emit Settled(auctionId, winner, consignor, nft, tokenId, price, fee);
    }
}
